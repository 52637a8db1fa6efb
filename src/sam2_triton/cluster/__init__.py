"""Several embedded replicas behind one balancer, with Prometheus: ``sam2-triton cluster``."""
