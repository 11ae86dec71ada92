from services.inference.app import SERVICE, build
from services.runner import run_service

run_service(SERVICE, build)
