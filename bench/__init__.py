"""`make bench`: how close the Interactive Storybook gets to the floor its upstreams set, at what scale.

Starts the real gateway and workers on the local RabbitMQ with the offline fakes of
Moonshot and jimeng-api at configured latencies, drives concurrent readers over the
real WebSocket, and compares what they saw with the floor those latencies allow and
with a sequential backend. See docs/benchmarks.md.
"""
