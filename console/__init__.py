"""The web console: where the people who send the files upload them and see what happened.

Server-rendered pages (FastAPI + Jinja2, a little plain JavaScript, no build step) over the
same store, reports and Prefect runs as the rest of the pipeline: `app.py` wires the pages,
each other module does one job (sign-in, uploads, file status, contracts in words, language).
"""
