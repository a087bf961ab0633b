"""The Spark edge: session building, the Kafka streaming source, decode, row rules,
windowed statistics and exactly-once sinks. Imported explicitly, submodule by submodule.
"""
