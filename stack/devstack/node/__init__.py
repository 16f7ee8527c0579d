"""The local stack's node: the private network namespace it lives in, containerd, kubelet,
kube-proxy, the CNI bridge and the cluster add-ons (DNS, local volumes); and the Secret-volume
projector kept for the receiver's fast reload tests."""
