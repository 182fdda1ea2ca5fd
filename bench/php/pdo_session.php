<?php
// The stand-in for the database session handlers PHP applications use today: userland PHP
// on PDO (emulated prepares, PDO's default), a new connection per request, a GET_LOCK
// named lock per session, and the same table layout as Fleet's. Loaded with
// auto_prepend_file; session.save_path is "host;port;database;user;password;table".

final class PdoGetLockSessionHandler implements SessionHandlerInterface, SessionUpdateTimestampHandlerInterface
{
    private ?PDO $db = null;
    private ?string $locked = null;
    private string $table = 'php_sessions';

    public function open(string $path, string $name): bool
    {
        [$host, $port, $database, $user, $password, $this->table] = explode(';', $path);
        $this->db = new PDO("mysql:host=$host;port=$port;dbname=$database", $user, $password,
            [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
        return true;
    }

    public function read(string $id): string|false
    {
        $lock = $this->db->prepare('SELECT GET_LOCK(?, 10)');
        $lock->execute(["sess_$id"]);
        if ((int) $lock->fetchColumn() !== 1) {
            return false;
        }
        $this->locked = $id;
        $st = $this->db->prepare("SELECT data FROM {$this->table} WHERE id = ? AND expires > UNIX_TIMESTAMP()");
        $st->execute([$id]);
        $data = $st->fetchColumn();
        return $data === false ? '' : $data;
    }

    public function write(string $id, string $data): bool
    {
        $st = $this->db->prepare("INSERT INTO {$this->table} (id, data, expires) VALUES (?, ?, UNIX_TIMESTAMP() + ?)
            ON DUPLICATE KEY UPDATE data = VALUES(data), expires = VALUES(expires)");
        return $st->execute([$id, $data, (int) ini_get('session.gc_maxlifetime')]);
    }

    public function updateTimestamp(string $id, string $data): bool
    {
        $st = $this->db->prepare("UPDATE {$this->table} SET expires = UNIX_TIMESTAMP() + ? WHERE id = ?");
        return $st->execute([(int) ini_get('session.gc_maxlifetime'), $id]);
    }

    public function validateId(string $id): bool
    {
        $st = $this->db->prepare("SELECT 1 FROM {$this->table} WHERE id = ? AND expires > UNIX_TIMESTAMP()");
        $st->execute([$id]);
        return $st->fetchColumn() !== false;
    }

    public function close(): bool
    {
        if ($this->locked !== null) {
            $this->db->prepare('SELECT RELEASE_LOCK(?)')->execute(["sess_{$this->locked}"]);
            $this->locked = null;
        }
        $this->db = null;
        return true;
    }

    public function destroy(string $id): bool
    {
        return $this->db->prepare("DELETE FROM {$this->table} WHERE id = ?")->execute([$id]);
    }

    public function gc(int $max_lifetime): int|false
    {
        return $this->db->exec("DELETE FROM {$this->table} WHERE expires <= UNIX_TIMESTAMP() LIMIT 1000");
    }
}

session_set_save_handler(new PdoGetLockSessionHandler(), true);
