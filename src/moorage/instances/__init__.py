"""Container instances: image pulls, layer snapshots, the container runtime, and (later) the
container-group lifecycle on top of them."""
