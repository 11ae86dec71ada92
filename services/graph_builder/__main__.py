from services.graph_builder.app import SERVICE, build
from services.runner import run_service

run_service(SERVICE, build)
