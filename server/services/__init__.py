"""The rules of each resource. No aiohttp here: services take a connection and return data."""
