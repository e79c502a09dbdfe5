/**
 * The gallery's SQLite schema as numbered migrations: migration k brings a database at user_version k − 1
 * to k (Gallery.migrate). Append only: a shipped migration is never edited.
 */
export const MIGRATIONS: string[] = [
  // 1: runs, outputs, tags
  `CREATE TABLE runs (
     id INTEGER PRIMARY KEY,
     created_at TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('running', 'done', 'cancelled', 'interrupted', 'failed')),
     params_json TEXT NOT NULL,
     inputs_json TEXT NOT NULL,
     model_name TEXT NOT NULL,
     model_sha TEXT NOT NULL,
     disc_name TEXT,
     disc_sha TEXT,
     engine_version TEXT NOT NULL,
     t0 REAL NOT NULL,
     dg_weight REAL NOT NULL
   );
   CREATE TABLE outputs (
     id INTEGER PRIMARY KEY,
     run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
     created_at TEXT NOT NULL,
     source_path TEXT NOT NULL,
     sha256 TEXT,
     seed INTEGER NOT NULL,
     error TEXT,
     favourite INTEGER NOT NULL DEFAULT 0,
     note TEXT NOT NULL DEFAULT '',
     metrics_json TEXT
   );
   CREATE TABLE tags (
     output_id INTEGER NOT NULL REFERENCES outputs(id) ON DELETE CASCADE,
     tag TEXT NOT NULL,
     PRIMARY KEY (output_id, tag)
   );
   CREATE INDEX outputs_created ON outputs(created_at DESC, id DESC);
   CREATE INDEX outputs_run ON outputs(run_id, source_path);
   CREATE INDEX outputs_sha ON outputs(sha256);
   CREATE INDEX runs_model ON runs(model_name);
   CREATE INDEX runs_t0 ON runs(t0);
   CREATE INDEX runs_weight ON runs(dg_weight);
   CREATE INDEX tags_tag ON tags(tag);`,
  // 2: human studies (annotation mode)
  `CREATE TABLE studies (
     id INTEGER PRIMARY KEY,
     name TEXT NOT NULL,
     question TEXT NOT NULL CHECK (question IN ('realism', 'faithfulness')),
     seed INTEGER NOT NULL,
     created_at TEXT NOT NULL,
     settings_json TEXT NOT NULL
   );
   CREATE TABLE study_items (
     id INTEGER PRIMARY KEY,
     study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
     a_output INTEGER NOT NULL,
     b_output INTEGER,
     a_setting INTEGER NOT NULL DEFAULT 0,
     b_setting INTEGER NOT NULL DEFAULT 1,
     source_path TEXT NOT NULL,
     check_kind TEXT CHECK (check_kind IN ('repeat', 'obvious')),
     repeat_of INTEGER
   );
   CREATE TABLE judgements (
     id INTEGER PRIMARY KEY,
     study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
     item_id INTEGER NOT NULL REFERENCES study_items(id) ON DELETE CASCADE,
     annotator TEXT NOT NULL,
     created_at TEXT NOT NULL,
     position INTEGER NOT NULL,
     left_is_a INTEGER NOT NULL,
     choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'tie')),
     undone INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX judgements_by ON judgements(study_id, annotator, undone);`,
  // 3: the source's original file name (a studio upload is stored under its digest), searchable
  `ALTER TABLE outputs ADD COLUMN source_name TEXT;`,
  // 4: annotator links (a capability per study and annotator; the token itself is never stored, only its digest)
  `CREATE TABLE annotator_links (
     id INTEGER PRIMARY KEY,
     study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
     annotator TEXT NOT NULL,
     token_sha256 TEXT NOT NULL UNIQUE,
     created_at TEXT NOT NULL,
     revoked INTEGER NOT NULL DEFAULT 0
   );`,
];
