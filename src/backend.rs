//! Backend servers and their health state (pure state machine).
