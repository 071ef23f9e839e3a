-- Airflow's metadata lives in its own database beside the batch copy's (quiver).
-- The postgres image runs this once, when it initialises an empty data volume.
CREATE DATABASE airflow;
