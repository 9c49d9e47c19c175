//! The unicast link endpoint (kernel `link.c`), spec §4. (In progress.)
