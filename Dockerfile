# Kith in a container: configure it with KITH_* environment variables.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KITH_DATABASE_URL=sqlite:////data/kith.db

RUN useradd --create-home --uid 10001 kith \
    && mkdir /data && chown kith:kith /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY server ./server
COPY static ./static
RUN pip install --no-cache-dir .

USER kith
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["kith"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
