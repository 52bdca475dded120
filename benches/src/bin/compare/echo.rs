//! The floor for a remote hit: a bare tonic unary call over the same kind of loopback channel,
//! answered with a payload of the same size that the server already holds. No cache, no
//! codec, no flight: what is left is tonic, HTTP/2 and the kernel, and the one thing every
//! v2 server must do before it answers, checking that it hosts the group the request names.

use bytes::Bytes;
use groupcache_pb::v2::groupcache_client::GroupcacheClient;
use groupcache_pb::v2::groupcache_server::{Groupcache as Rpc, GroupcacheServer};
use groupcache_pb::v2::{
    DescribeRequest, DescribeResponse, GetManyRequest, GetManyResponse, GetRequest, GetResponse,
    InvalidateRequest, InvalidateResponse, LeaseRequest, LeaseResponse, RemoveRequest, SetRequest,
    WriteResponse,
};
use tonic::service::Routes;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::cluster::Servers;
use crate::ours::GROUP;

struct Echo {
    payload: Bytes,
}

impl Echo {
    /// The minimum a server does with a request's group: refuse one it does not host.
    fn check_group(group: &str) -> Result<(), Status> {
        if group == GROUP {
            Ok(())
        } else {
            Err(Status::not_found("an echo server hosts one group"))
        }
    }
}

#[tonic::async_trait]
impl Rpc for Echo {
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        Self::check_group(&request.get_ref().group)?;
        Ok(Response::new(GetResponse {
            value: self.payload.clone(),
            // The same reply size as a groupcache owner's, whose replies carry its epoch.
            expires_in_ms: None,
            owner_epoch: u64::MAX / 3,
            owner_sequence: 0,
            tells_asker: true,
            hot: false,
        }))
    }

    async fn remove(
        &self,
        request: Request<RemoveRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        Self::check_group(&request.get_ref().group)?;
        Ok(Response::new(WriteResponse::default()))
    }

    async fn set(&self, request: Request<SetRequest>) -> Result<Response<WriteResponse>, Status> {
        Self::check_group(&request.get_ref().group)?;
        Ok(Response::new(WriteResponse::default()))
    }

    async fn invalidate(
        &self,
        _request: Request<InvalidateRequest>,
    ) -> Result<Response<InvalidateResponse>, Status> {
        Ok(Response::new(InvalidateResponse {}))
    }

    async fn get_many(
        &self,
        _request: Request<GetManyRequest>,
    ) -> Result<Response<GetManyResponse>, Status> {
        Err(Status::unimplemented(
            "an echo server answers single gets only",
        ))
    }

    async fn lease(
        &self,
        _request: Request<LeaseRequest>,
    ) -> Result<Response<LeaseResponse>, Status> {
        Err(Status::unimplemented(
            "an echo server issues no invalidations",
        ))
    }

    async fn describe(
        &self,
        _request: Request<DescribeRequest>,
    ) -> Result<Response<DescribeResponse>, Status> {
        Err(Status::unimplemented("an echo server has no ring"))
    }
}

/// An echo server and a client connected to it.
pub(crate) struct EchoPair {
    client: GroupcacheClient<Channel>,
    _servers: Servers,
}

impl EchoPair {
    pub(crate) async fn start(value_size: usize) -> Self {
        let mut servers = Servers::default();
        let (listener, addr) = Servers::bind().await;
        let limit = value_size + 64 * 1024;
        let server = GroupcacheServer::new(Echo {
            payload: Bytes::from(vec![0xA5; value_size]),
        })
        .max_encoding_message_size(limit);
        servers.serve(listener, Routes::new(server));
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("loopback uri")
            .tcp_nodelay(true)
            .connect()
            .await
            .expect("connect to the echo server");
        let client = GroupcacheClient::new(channel).max_decoding_message_size(limit);
        EchoPair {
            client,
            _servers: servers,
        }
    }

    /// One round trip; the payload's length.
    pub(crate) async fn call(&self, key: &str) -> Result<usize, String> {
        let mut client = self.client.clone();
        let reply = client
            .get(GetRequest {
                group: GROUP.to_owned(),
                key: key.to_owned(),
                ..GetRequest::default()
            })
            .await
            .map_err(|s| s.to_string())?;
        Ok(reply.into_inner().value.len())
    }
}
