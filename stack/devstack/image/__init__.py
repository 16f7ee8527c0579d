"""Container images built on this machine without a registry: the Debian base, the project's
image from its Dockerfile, and the node's own small images (sandbox, DNS, volume provisioner)."""
