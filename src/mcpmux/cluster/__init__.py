"""Cluster mode: several replicas behind any load balancer, sessions owned by one replica, on Valkey/Redis."""
