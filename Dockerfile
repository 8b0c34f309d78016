# syntax=docker/dockerfile:1
#
# The hissuno image: one static binary for every role and command
# (docker-compose.yml runs it as setup, then ingress, verifier, rotator and
# auditor, and as the admin's CLI).
#
#   docker build -t hissuno .
#   docker run --rm hissuno verifier --help

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w" -o /out/hissuno ./cmd/hissuno

# Alpine rather than distroless: its busybox wget lets docker-compose.yml
# check /readyz. The process runs as an unprivileged user and writes nothing.
FROM alpine:3.22
RUN addgroup -S -g 10001 hissuno && adduser -S -D -H -u 10001 -G hissuno -s /sbin/nologin hissuno
COPY --from=build /out/hissuno /hissuno
USER 10001:10001
# 8080: the ingress's widget API (and its /healthz, /readyz, /metrics);
# 9090: /healthz, /readyz and /metrics of the other roles (--metrics-listen).
EXPOSE 8080 9090
ENTRYPOINT ["/hissuno"]
CMD ["help"]
