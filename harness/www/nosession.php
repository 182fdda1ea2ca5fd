<?php
// The same page without a session: the baseline for a handler's overhead.
header('X-Fleet-Worker: ' . getenv('FLEET_WORKER'));
header('Content-Type: text/plain');
echo "1\n";
