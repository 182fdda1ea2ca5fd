<?php
// The demo page (scripts/demo.sh, docker/compose.yaml): which app server answered, and
// this visitor's counter, kept across servers by Fleet.
header('Content-Type: text/plain');
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
printf(
    "served by %s (host %s)\nrequests in this session: %d\n",
    getenv('FLEET_WORKER') ?: 'php-fpm',
    gethostname(),
    $_SESSION['n']
);
