#!/bin/sh
# The compose stack's MariaDB (Debian's mariadbd): on first start, a datadir with the
# database and user the environment names (as the official image's MARIADB_* variables do),
# then mariadbd in the foreground as the mysql user.
set -eu
: "${MARIADB_DATABASE:=fleet}" "${MARIADB_USER:=fleet}"
: "${MARIADB_PASSWORD:?set MARIADB_PASSWORD}" "${MARIADB_ROOT_PASSWORD:?set MARIADB_ROOT_PASSWORD}"
data=/var/lib/mysql
init=
if [ ! -d "$data/mysql" ]; then
    mariadb-install-db --no-defaults --user=mysql --datadir="$data" --skip-test-db \
        --skip-name-resolve --auth-root-authentication-method=socket >/dev/null
    init=/run/mysqld/init.sql
    cat >"$init" <<SQL
CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;
CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY '$MARIADB_PASSWORD';
GRANT ALL ON \`$MARIADB_DATABASE\`.* TO '$MARIADB_USER'@'%';
CREATE USER 'root'@'%' IDENTIFIED BY '$MARIADB_ROOT_PASSWORD';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
SQL
fi
exec mariadbd --no-defaults --user=mysql --datadir="$data" --socket=/run/mysqld/mysqld.sock \
    --bind-address=0.0.0.0 --port=3306 --skip-name-resolve ${init:+--init-file="$init"}
