# Wingbeat as a container: `docker build -t wingbeat .`, then e.g. `docker run --env-file .env -v wingbeat-data:/home/container/data wingbeat`
# (or deploy/compose.yaml). `docker run --env-file .env wingbeat check` checks the settings instead.
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The user Pterodactyl/Pelican Wings runs servers as (uid 1000, home /home/container), so the same image
# behaves the same under Docker Compose and under Wings.
RUN useradd --uid 1000 --user-group --create-home --home-dir /home/container --shell /bin/bash container

WORKDIR /tmp/wingbeat
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install . && rm -rf /tmp/wingbeat

USER container
ENV HOME=/home/container
WORKDIR /home/container
# The store (the default DATABASE_URL, sqlite:///data/wingbeat.sqlite3, is relative to this folder) and the
# heartbeat file live in /home/container/data: mount a volume there.
RUN mkdir -p /home/container/data
VOLUME ["/home/container/data"]

# The bot touches data/heartbeat every ~10 s while its Discord gateway and event loop are alive.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["wingbeat", "healthcheck"]

# SIGTERM (docker stop) and SIGINT both shut the bot down cleanly.
ENTRYPOINT ["wingbeat"]
