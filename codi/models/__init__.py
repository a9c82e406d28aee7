"""CoDi's networks, each constructible from a config with no download."""
