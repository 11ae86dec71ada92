# Image of the four services (one image, a command per service in docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY libs libs
COPY services services
COPY proto proto
COPY samples samples
RUN pip install --no-cache-dir --no-deps -e .
ENV PYTHONUNBUFFERED=1
