<?php
// Takes the session lock, says which worker holds it, and hangs: for crash tests.
session_start();
file_put_contents($_GET['pid_file'], getmypid());
sleep(60);
