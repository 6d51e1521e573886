# The one image every omnicdp service runs from: `cdp serve <service>`.
FROM python:3.11-slim
WORKDIR /app
COPY api ./api
COPY pyproject.toml README.md ./
COPY omnicdp ./omnicdp
COPY services ./services
RUN pip install --no-cache-dir ./api . && useradd --uid 10001 --no-create-home cdp
USER 10001
ENTRYPOINT ["cdp"]
