# The compose stack's other servers, from Debian's packages on the same base as the app
# image (no registry image is used): nginx, Redis, MariaDB. Context: docker/.
#   docker build -f docker/services.Dockerfile --target redis docker/
ARG DEBIAN=bookworm

# Redis, unprotected on the compose network only, nothing saved to disk; its unix socket in
# /run/redis (a volume the tests container shares).
FROM debian:${DEBIAN}-slim AS redis
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /run/redis && chown redis:redis /run/redis
USER redis
EXPOSE 6379
HEALTHCHECK --interval=2s --timeout=3s --retries=15 CMD redis-cli ping | grep -q PONG
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no", \
     "--unixsocket", "/run/redis/redis.sock", "--unixsocketperm", "777"]

# MariaDB with the database and user of MARIADB_DATABASE, MARIADB_USER, MARIADB_PASSWORD
# (and root's MARIADB_ROOT_PASSWORD for other hosts), made on first start.
FROM debian:${DEBIAN}-slim AS mariadb
RUN apt-get update \
    && apt-get install -y --no-install-recommends mariadb-server-core mariadb-client-core \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system mysql \
    && useradd --system --gid mysql --home-dir /nonexistent --shell /usr/sbin/nologin mysql \
    && mkdir -p /var/lib/mysql /run/mysqld && chown mysql:mysql /var/lib/mysql /run/mysqld
COPY mariadb/start.sh /usr/local/bin/fleet-mariadb
USER mysql
VOLUME /var/lib/mysql
EXPOSE 3306
# Over the socket, as the mysql user (unix_socket authentication).
HEALTHCHECK --interval=2s --timeout=3s --retries=30 \
    CMD mariadb --no-defaults --socket=/run/mysqld/mysqld.sock -umysql -e 'SELECT 1' >/dev/null
CMD ["fleet-mariadb"]

# The balancer: Debian's nginx, round robin over the app containers (nginx/default.conf),
# with the PHP location the end-to-end tests' nginx includes (nginx/php-location.conf).
FROM debian:${DEBIAN}-slim AS nginx
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx \
    && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
    && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
COPY nginx/default.conf /etc/nginx/conf.d/default.conf
COPY nginx/php-location.conf /etc/nginx/fleet/php-location.conf
EXPOSE 80
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --timeout=3s --retries=3 \
    CMD bash -c 'exec 3<>/dev/tcp/127.0.0.1/80 && printf "GET /nginx-health HTTP/1.0\r\n\r\n" >&3 && grep -q "200 OK" <&3'
CMD ["nginx", "-g", "daemon off;"]
