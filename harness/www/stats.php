<?php
// This FPM pool's fleet_stats() as JSON, without opening a session.
header('Content-Type: application/json');
header('X-Fleet-Worker: ' . getenv('FLEET_WORKER'));
echo json_encode(fleet_stats());
