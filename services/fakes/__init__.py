"""Offline stand-ins for the upstreams: Moonshot (text), jimeng-api and Volcengine Ark (images).

Each fake is a real HTTP server that behaves like its upstream as described in
docs/upstreams.md, including the awkward parts (usage inside the last stream chunk,
jimeng errors as HTTP 200, Ark billing a picture whose client has gone), so that the
clients are tested against what they will meet in production. Each also takes
injected faults through `/_fake/faults`.

    python -m services.fakes.moonshot --port 8801
    python -m services.fakes.jimeng --port 5100
    python -m services.fakes.ark --port 8102

Tests and the e2e harness can run one in-process with `serving.BackgroundServer`.
"""
