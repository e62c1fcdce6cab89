FROM python:3.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
# collectstatic needs settings to import: throwaway keys, used only for this build step.
RUN DJANGO_SECRET_KEY=build-only FIELD_ENCRYPTION_KEY=lJeH8y1aqlogdtbMrJmuqB441M_wtq0ZgG0nBFzT0DY= \
    python manage.py collectstatic --noinput -v0
RUN useradd --system --create-home arbsim && chown -R arbsim /app
USER arbsim
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "config.asgi:application"]
