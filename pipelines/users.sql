-- The default `users` pipeline: decoded randomuser records (table raw_users) to the
-- rows of Cassandra's spark_streams.created_users.
--
-- id is the record's own login.uuid, so replaying a Kafka batch rewrites the same rows
-- (Cassandra upserts by primary key) instead of minting new ones.
SELECT
    login_uuid AS id,
    name_first AS first_name,
    name_last AS last_name,
    gender,
    concat(
        CAST(location_street_number AS VARCHAR), ' ', location_street_name, ', ',
        location_city, ', ', location_state, ', ', location_country
    ) AS address,
    location_postcode AS post_code,
    email,
    login_username AS username,
    dob_date AS dob,
    registered_date,
    phone,
    picture_medium AS picture,
    kafka_partition,
    kafka_offset,
    kafka_timestamp AS event_time,
    processed_at
FROM raw_users
