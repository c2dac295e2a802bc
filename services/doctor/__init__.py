"""The doctor: one table of checks that says what is broken and how to fix it.

    python -m services.doctor [--service gateway|llm_worker|image_worker] [--json]
    python -m services.doctor jimeng-session set|add|remove ID[,ID...] | show
    python -m services.doctor dead [--limit N]

Born of an incident in which every container looked healthy while every picture
failed: the jimeng session id had never reached the image_worker, the health checks
only checked an open port, and nothing said the session had expired. Every check
here looks at the real thing (configuration as the service reads it, the broker's
queues, the store, both upstreams, the running services) and every ✗ comes with
the fix. Secrets are never printed: at most their last four characters.
"""
