from services.runner import run_service
from services.trainer.app import SERVICE, build

run_service(SERVICE, build)
