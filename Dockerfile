# The Repazoo code location: serves the definitions over gRPC to the Dagster webserver and daemon,
# and is the image of every run (K8sRunLauncher / k8s_job_executor) and celery worker.
#   docker build -t repazoo-assets:$(git rev-parse --short HEAD) .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    REPAZOO_ENV=production \
    ARROW_DEFAULT_MEMORY_POOL=system

WORKDIR /opt/repazoo

# Dependencies first, so a code change does not reinstall them. dagster-k8s is what the
# instance's K8sRunLauncher and the k8s_job_executor import inside the image (same release line
# as the dagster pin in pyproject.toml).
# The compiled parts (the PII detector's engine, repazoo_assets/lib/privacy/_pii_fast.c, and the
# event export's payload check, repazoo_assets/lib/events/_json_check.c) are built here: the slim
# image has Python's headers but no C compiler, so gcc is installed for the build and removed
# after. The built modules are also copied next to their sources, because the code server imports
# the package from this working directory; the checks then prove what the server will run.
# ARROW_DEFAULT_MEMORY_POOL: Arrow's native allocations on the system allocator from the start
# (the package sets it too; see repazoo_assets/lib/events/memory.py).
COPY pyproject.toml setup.py README.md ./
COPY repazoo_assets ./repazoo_assets
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install . "dagster-k8s==0.29.27" \
    && cp "$(cd / && python -c 'import repazoo_assets.lib.privacy._pii_fast as m; print(m.__file__)')" \
        repazoo_assets/lib/privacy/ \
    && cp "$(cd / && python -c 'import repazoo_assets.lib.events._json_check as m; print(m.__file__)')" \
        repazoo_assets/lib/events/ \
    && python -c "from repazoo_assets.lib.privacy import pii; assert pii.ENGINE == 'compiled', pii.ENGINE" \
    && python -c "from repazoo_assets.lib.events import export; assert export._json_check is not None" \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

COPY deploy ./deploy
COPY workspace.yaml ./

# A user without a shell or a home directory worth the name; the instance folder is its own.
RUN useradd --system --uid 10001 --home-dir /opt/repazoo --shell /usr/sbin/nologin repazoo \
    && mkdir -p "$DAGSTER_HOME" \
    && cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml" \
    && chown -R repazoo:repazoo "$DAGSTER_HOME"
USER 10001

EXPOSE 4000
# The Helm chart replaces this with `dagster api grpc` + dagsterApiGrpcArgs (deploy/helm/values.yaml).
CMD ["dagster", "code-server", "start", "--host", "0.0.0.0", "--port", "4000", "--module-name", "repazoo_assets.definitions"]
