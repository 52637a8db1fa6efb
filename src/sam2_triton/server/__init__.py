"""Running tritonserver: the embedded server's process, the stub watchdog, the GPU image's
supervisor.
"""
