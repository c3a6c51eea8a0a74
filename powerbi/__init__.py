"""The Power BI client: batches within the service's limits, and the POSTs that send them.

No Prefect here (the flows wrap it in tasks), so it is tested against the stand-in alone.
"""
