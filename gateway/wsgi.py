"""WSGI entry point for gunicorn: ``gateway.wsgi:app``."""

from gateway import create_app
from gateway.batch.jobs import start_resumer
from gateway.crm.delivery import start_delivery
from gateway.integrity.background import start_sealer
from gateway.model_switch import start_model_refresh

app = create_app()
# In the server: keep the log's connection, and share commits between request threads.
app.extensions["loangate"].extras["decision_log"].serve(
    app.extensions["loangate"].config["server"].get("threads") or 1
)
start_sealer(app)  # in the server only: apps built by tests and the CLI seal on demand
start_resumer(app.extensions["loangate"])  # resume batch jobs whose process died
start_delivery(app)  # CRM write-backs, when crm_writeback is configured
start_model_refresh(app)  # follow promotions of the models pipelines score with
