//! Community ID v1 flow hashing (https://github.com/corelight/community-id-spec).
