<?php
// Every session hook and failure path, many times over: run under valgrind by
// harness/tests/valgrind.rs to show Fleet makes no memory errors and leaks nothing per request.
ini_set('session.save_handler','fleet'); ini_set('session.save_path', getenv('FLEET_SAVE_PATH'));
ini_set('session.use_strict_mode','1');
// Warnings are still raised (and formatted) with display off; the output stays "done".
ini_set('display_errors','0');
for ($i = 0; $i < 20; $i++) {
  session_id('vgid' . ($i % 3)); @session_start(); $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1; $_SESSION['b'] = str_repeat("x\0", 1000);
  if ($i % 5 == 0) session_regenerate_id(true);
  if ($i % 7 == 0) { session_abort(); continue; }
  session_write_close();
}
session_start(); session_destroy();
ini_set('session.save_path','redis://127.0.0.1:1'); @session_start();
ini_set('session.save_path','redis://bad host'); @session_start();
ini_set('session.save_path','mysql://u:pw@127.0.0.1:1/db'); @session_start();
ini_set('session.save_path','mysql://h/d?table=x;y'); @session_start();
echo "done\n";
