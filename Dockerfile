# One image for the API and the workers. The GPU worker uses the same code on a CUDA
# base (build arg BASE), with torch's CUDA wheel selected by TORCH_INDEX.
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends dataset-fashion-mnist \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY cli cli
COPY contracts contracts
COPY core core
COPY models models
COPY api api
COPY workers workers
COPY migrations migrations
RUN pip install --index-url ${TORCH_INDEX} "torch==2.13.0" \
    && pip install . \
    && pip install --no-deps "digit-recognizer-py==0.1.0"
RUN useradd --create-home expunge
USER expunge
EXPOSE 8000
CMD ["expunge", "api", "--host", "0.0.0.0", "--port", "8000"]
