# Image of the lakestream jobs, used by docker-compose.yml's `apps` profile.
FROM node:20-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends zlib1g-dev libssl-dev libsasl2-dev libzstd-dev liblz4-dev python3 python3-pip \
 && rm -rf /var/lib/apt/lists/*
RUN npm install -g pnpm@10.34.9
WORKDIR /app
COPY package.json pnpm-lock.yaml ./
# librdkafka is built from source against Debian's libraries (its prebuilt download is not used).
RUN CKJS_LINKING=dynamic pnpm install --frozen-lockfile
COPY . .
CMD ["pnpm", "run", "pipeline"]
