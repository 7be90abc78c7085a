"""Where steps run: the executor chosen for the deployment."""
