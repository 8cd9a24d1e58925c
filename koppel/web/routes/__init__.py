"""The app's routes, one module per area; each module's `router` declares who may use it."""
