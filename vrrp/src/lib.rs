//! VRRP v2/v3: wire codec, sans-IO state machine, Linux driver.
