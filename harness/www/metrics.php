<?php
// The five-line metrics page of docs/operations.md: Prometheus scrapes it (keep it behind the web
// server's access rules). No session is opened, so scraping counts nothing.
header('Content-Type: text/plain; version=0.0.4');
header('X-Fleet-Worker: ' . getenv('FLEET_WORKER'));
echo fleet_metrics();
