"""Talking to Solana nodes: JSON-RPC over HTTP (`client`) and PubSub over websockets
(`pubsub`); `protocol` holds the pure request/response and error-classification code."""

from indexer.rpc.client import RpcClient
from indexer.rpc.protocol import SignatureInfo, SignatureStatus
from indexer.rpc.pubsub import LogsNotification, PubSubClosed, PubSubConnection

__all__ = ["LogsNotification", "PubSubClosed", "PubSubConnection", "RpcClient", "SignatureInfo",
           "SignatureStatus"]
