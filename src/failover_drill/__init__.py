"""failover-drill: rehearse multi-region failover and measure what users felt."""

__version__ = "0.1.0"
