# syntax=docker/dockerfile:1
# One image for the inference server (`mlplug serve`, the default command) and for flow runs
# started by the Prefect Kubernetes worker (`prefect flow-run execute`, set by the worker).
#   docker build -t mlplug:0.1.0 .
#   docker build --build-arg PLUGINS="plugins/fraud" -t mlplug-fraud:0.1.0 .   # no torch
# See docs/operations.md ("Kubernetes").

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/mlplug
ENV PATH=/opt/mlplug/bin:$PATH
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY mlplug ./mlplug
COPY flows ./flows
COPY plugins ./plugins
# Task plugins to install (directories under plugins/).
ARG PLUGINS="plugins/fraud plugins/convqa"
# convqa needs torch; the CPU wheels keep the image a fraction of the CUDA build's size.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install -c constraints.txt --extra-index-url "$TORCH_INDEX_URL" ".[k8s]" $PLUGINS \
 && pip check

FROM python:3.11-slim
RUN groupadd --gid 10001 mlplug \
 && useradd --uid 10001 --gid 10001 --home-dir /home/mlplug --create-home --shell /usr/sbin/nologin mlplug \
 && mkdir -p /var/lib/mlplug \
 && chown mlplug:mlplug /var/lib/mlplug
COPY --from=build /opt/mlplug /opt/mlplug
# The flows' source and prefect.yaml: deployments name entrypoints such as
# flows/train.py:train relative to the working directory.
WORKDIR /app
COPY prefect.yaml ./
COPY flows ./flows
COPY deployments ./deployments
ENV PATH=/opt/mlplug/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MLPLUG_HOME=/var/lib/mlplug \
    PREFECT_HOME=/var/lib/mlplug/prefect \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    WHYLOGS_NO_ANALYTICS=True \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    RAY_USAGE_STATS_ENABLED=0 \
    DO_NOT_TRACK=1 \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
EXPOSE 8000
# No ENTRYPOINT: the Prefect worker runs flow-run Jobs with their own command in `args`.
CMD ["mlplug", "serve", "--host", "0.0.0.0", "--port", "8000"]
