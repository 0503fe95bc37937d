# firebell: slim, non-root image. Build with `docker build -t firebell .`
# Run: docker run -p 3000:3000 -v firebell-data:/data --env-file firebell.env firebell
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install --no-cache-dir uv

WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY bot ./bot
COPY handlers ./handlers
RUN uv sync --frozen --no-dev --no-cache

RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /data firebell \
    && mkdir -p /data \
    && chown firebell:firebell /data

# The SQLite database lives in /data (mount a volume there). A firebell.toml
# in /data is picked up automatically; or set FIREBELL_CONFIG.
WORKDIR /data
ENV PATH="/app/.venv/bin:$PATH" \
    FIREBELL_DATABASE_URL=sqlite:////data/firebell.db
VOLUME ["/data"]
USER firebell

EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=3)"

CMD ["firebell", "serve", "--host", "0.0.0.0", "--port", "3000"]
