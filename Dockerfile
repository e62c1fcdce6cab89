FROM python:3.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
# collectstatic needs settings to import: throwaway keys, used only for this build step.
RUN DJANGO_SECRET_KEY=build-only FIELD_ENCRYPTION_KEY=lJeH8y1aqlogdtbMrJmuqB441M_wtq0ZgG0nBFzT0DY= \
    python manage.py collectstatic --noinput -v0
# recordings/: RECORDINGS_DIR, where docker-compose mounts the volume the web tier stores uploads in
# and the workers read them from (a fresh volume takes this folder's owner).
RUN useradd --system --create-home arbsim && mkdir -p /app/recordings && chown -R arbsim /app
USER arbsim
EXPOSE 8000
# The web tier: uvicorn (HTTP and websockets), WEB_CONCURRENCY worker processes, one per CPU
# when unset. Django serves one process's requests on one core at a time (the GIL).
CMD ["sh", "-c", "exec uvicorn config.asgi:application --host 0.0.0.0 --port 8000 --no-access-log --timeout-graceful-shutdown 10 --workers \"${WEB_CONCURRENCY:-$(nproc)}\""]
