"""Protocol plugins for cloud providers (Aliyun OSS, Azure Blob); they arrive with the providers issue."""
