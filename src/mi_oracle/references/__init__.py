"""Reference JSONs in the schemas candle-mi's tests read: sae, plt, clt and forward."""
