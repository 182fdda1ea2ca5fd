//! The DDL Fleet runs (with `IF NOT EXISTS`) or `fleetctl schema` prints: the sessions
//! table, its stored procedures and the leases table.

use super::MAX_TABLE_FOR_PROCEDURES;

/// The DDL of the session table. Fleet runs it (with `IF NOT EXISTS`) unless
/// `create_table=0`; `fleetctl schema` prints it for DBAs who create the table themselves.
pub fn create_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS `{table}` (
  `id` VARCHAR(256) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  `data` LONGBLOB NOT NULL,
  `expires` BIGINT NOT NULL COMMENT 'Unix time (server clock) after which the session is gone',
  PRIMARY KEY (`id`),
  KEY `expires` (`expires`)
) ENGINE=InnoDB"
    )
}

/// The name of one of the stored procedures for `table`. The `1` is the version of their
/// bodies: a release that changes one creates `fleet2_…` beside it, so workers of both
/// versions run side by side during a rolling upgrade.
pub(super) fn procedure_name(table: &str, what: &str) -> String {
    format!("fleet1_{table}_{what}")
}

/// The DDL of the stored procedures `lock=advisory` calls (see [`MySqlProcedures`]). Fleet
/// runs it unless `create_table=0` or `procedures=0`; `fleetctl schema` prints it.
///
/// They run with the caller's privileges (`SQL SECURITY INVOKER`), so they grant nothing
/// the session user does not already have. Each takes the lock name's source text, hashed
/// as the plain statements hash it, so workers with and without the procedures exclude
/// each other on the same session. A failing statement inside releases the lock before
/// the error goes back, as the plain statements' caller does.
pub fn create_procedures_sql(table: &str) -> [String; 3] {
    let read = procedure_name(table, "read");
    let write = procedure_name(table, "write");
    let touch = procedure_name(table, "touch");
    let lock = "CONCAT('fleet:', SHA1(p_lock_key))";
    let params = "IN p_id VARCHAR(256) CHARACTER SET ascii, IN p_lock_key VARCHAR(1024) CHARACTER SET utf8mb4";
    let release_on_error = format!(
        "DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN DO RELEASE_LOCK({lock}); RESIGNAL; END;"
    );
    [
        format!(
            "CREATE PROCEDURE IF NOT EXISTS `{read}`({params}, IN p_wait DOUBLE)
  SQL SECURITY INVOKER
  COMMENT 'Fleet sessions: lock a session and read it'
BEGIN
  DECLARE got INT DEFAULT NULL;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    IF got = 1 THEN DO RELEASE_LOCK({lock}); END IF;
    RESIGNAL;
  END;
  SET got = GET_LOCK({lock}, p_wait);
  IF got = 1 THEN
    SELECT got, `data` FROM `{table}` WHERE `id` = p_id AND `expires` > UNIX_TIMESTAMP();
  ELSE
    SELECT got, NULL;
  END IF;
END"
        ),
        format!(
            "CREATE PROCEDURE IF NOT EXISTS `{write}`({params}, IN p_data LONGBLOB, IN p_lifetime BIGINT)
  SQL SECURITY INVOKER
  COMMENT 'Fleet sessions: write a locked session and unlock it'
BEGIN
  {release_on_error}
  INSERT INTO `{table}` (`id`, `data`, `expires`) VALUES (p_id, p_data, UNIX_TIMESTAMP() + p_lifetime)
    ON DUPLICATE KEY UPDATE `data` = VALUES(`data`), `expires` = VALUES(`expires`);
  DO RELEASE_LOCK({lock});
END"
        ),
        format!(
            "CREATE PROCEDURE IF NOT EXISTS `{touch}`({params}, IN p_lifetime BIGINT)
  SQL SECURITY INVOKER
  COMMENT 'Fleet sessions: extend a locked, unchanged session and unlock it'
BEGIN
  {release_on_error}
  UPDATE `{table}` SET `expires` = UNIX_TIMESTAMP() + p_lifetime WHERE `id` = p_id;
  DO RELEASE_LOCK({lock});
END"
        ),
    ]
}

/// The table of named leases (`fleetctl run-once`, PHP's `fleet_lease_*`): per name, the
/// holder's token and when its lease ends (the server's clock, in ms, so app servers'
/// clocks do not matter), the fencing counter, and the last schedule slot run.
pub const LEASES_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS `fleet_leases` (
  `name` VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  `holder` VARCHAR(64) CHARACTER SET ascii NOT NULL DEFAULT '' COMMENT 'the holder''s secret token',
  `held_until` BIGINT NOT NULL DEFAULT 0 COMMENT 'Unix time in ms (server clock) when the lease ends unless renewed',
  `fence` BIGINT NOT NULL DEFAULT 0 COMMENT 'grows with every new holder',
  `slot` VARCHAR(64) NOT NULL DEFAULT '' COMMENT 'the last schedule slot run',
  `slot_until` BIGINT NOT NULL DEFAULT 0 COMMENT 'Unix time until which that slot counts as done',
  PRIMARY KEY (`name`)
) ENGINE=InnoDB";

/// The whole schema for `table` as a script for the `mysql`/`mariadb` client: the table,
/// the procedures unless `procedures` is false (or the table name is too long for them), and
/// the leases table.
pub fn schema_script(table: &str, procedures: bool) -> String {
    let mut script = format!("{};\n\n{LEASES_TABLE_SQL};\n", create_table_sql(table));
    if procedures && table.len() <= MAX_TABLE_FOR_PROCEDURES {
        script.push_str("\nDELIMITER //\n");
        for ddl in create_procedures_sql(table) {
            script.push_str(&ddl);
            script.push_str(" //\n");
        }
        script.push_str("DELIMITER ;\n");
    }
    script
}
