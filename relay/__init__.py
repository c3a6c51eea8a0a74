"""The relay: the object store's webhook in, Prefect events out.

A web service of its own: it imports nothing of the pipeline, only its settings and the
mapping of store events.
"""
