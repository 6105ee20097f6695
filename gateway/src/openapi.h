// The OpenAPI 3 document imgq-gateway serves at /v1/openapi.json: the
// routes of gateway.cc, their parameters, bodies and answers. Kept by hand
// with them; tests/gateway checks every route it names is served.
#pragma once

namespace imgq::gateway {

inline constexpr const char* kOpenApi = R"json({
 "openapi": "3.0.3",
 "info": {
  "title": "imgq HTTP API",
  "version": "1.0.0",
  "description": "The imgq broker over HTTP (imgq-gateway): submit images with a pipeline of operations, follow their jobs, fetch their results. Errors are RFC 9457 problem details carrying the imgq protocol's code (schemas/CLIENT-PROTOCOL.md, section 7). See docs/gateway.md."
 },
 "servers": [
  {
   "url": "/"
  }
 ],
 "security": [
  {
   "bearer": []
  }
 ],
 "paths": {
  "/v1/jobs": {
   "post": {
    "summary": "Submit a job",
    "operationId": "submitJob",
    "parameters": [
     {
      "$ref": "#/components/parameters/Op"
     },
     {
      "$ref": "#/components/parameters/Ops"
     },
     {
      "$ref": "#/components/parameters/Format"
     },
     {
      "$ref": "#/components/parameters/Priority"
     },
     {
      "$ref": "#/components/parameters/Name"
     },
     {
      "$ref": "#/components/parameters/Timeout"
     },
     {
      "$ref": "#/components/parameters/IdempotencyKey"
     }
    ],
    "requestBody": {
     "$ref": "#/components/requestBodies/Image"
    },
    "responses": {
     "202": {
      "description": "Accepted: stored at the broker.",
      "headers": {
       "Location": {
        "schema": {
         "type": "string"
        }
       }
      },
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Job"
        }
       }
      }
     },
     "200": {
      "description": "The job this Idempotency-Key already names.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Job"
        }
       }
      }
     },
     "409": {
      "description": "The Idempotency-Key names a job with another image or request (`conflict`).",
      "content": {
       "application/problem+json": {
        "schema": {
         "$ref": "#/components/schemas/Problem"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "413": {
      "$ref": "#/components/responses/TooLarge"
     },
     "415": {
      "$ref": "#/components/responses/NotAnImage"
     },
     "429": {
      "$ref": "#/components/responses/Busy"
     },
     "503": {
      "$ref": "#/components/responses/Unavailable"
     }
    }
   },
   "get": {
    "summary": "A page of this tenant's jobs, newest first",
    "operationId": "listJobs",
    "parameters": [
     {
      "name": "state",
      "in": "query",
      "schema": {
       "type": "string",
       "enum": [
        "queued",
        "running",
        "done",
        "failed",
        "cancelled"
       ]
      }
     },
     {
      "name": "limit",
      "in": "query",
      "schema": {
       "type": "integer",
       "minimum": 1,
       "maximum": 1000,
       "default": 50
      }
     },
     {
      "name": "cursor",
      "in": "query",
      "schema": {
       "type": "string"
      },
      "description": "The previous page's next_cursor."
     }
    ],
    "responses": {
     "200": {
      "description": "The page.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/JobList"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "503": {
      "$ref": "#/components/responses/Unavailable"
     }
    }
   }
  },
  "/v1/process": {
   "post": {
    "summary": "Submit a job and wait for its result image",
    "operationId": "process",
    "parameters": [
     {
      "$ref": "#/components/parameters/Op"
     },
     {
      "$ref": "#/components/parameters/Ops"
     },
     {
      "$ref": "#/components/parameters/Format"
     },
     {
      "$ref": "#/components/parameters/Priority"
     },
     {
      "$ref": "#/components/parameters/Name"
     },
     {
      "$ref": "#/components/parameters/Timeout"
     },
     {
      "$ref": "#/components/parameters/IdempotencyKey"
     },
     {
      "name": "wait",
      "in": "query",
      "schema": {
       "type": "number",
       "default": 60
      },
      "description": "Seconds to wait for the result."
     }
    ],
    "requestBody": {
     "$ref": "#/components/requestBodies/Image"
    },
    "responses": {
     "200": {
      "$ref": "#/components/responses/Image"
     },
     "422": {
      "description": "The job failed (its code and message).",
      "content": {
       "application/problem+json": {
        "schema": {
         "$ref": "#/components/schemas/Problem"
        }
       }
      }
     },
     "504": {
      "description": "Not finished within `wait`; the job goes on (its id in `job`).",
      "content": {
       "application/problem+json": {
        "schema": {
         "$ref": "#/components/schemas/Problem"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "413": {
      "$ref": "#/components/responses/TooLarge"
     },
     "415": {
      "$ref": "#/components/responses/NotAnImage"
     },
     "429": {
      "$ref": "#/components/responses/Busy"
     },
     "503": {
      "$ref": "#/components/responses/Unavailable"
     }
    }
   }
  },
  "/v1/jobs/{id}": {
   "parameters": [
    {
     "name": "id",
     "in": "path",
     "required": true,
     "schema": {
      "type": "string",
      "pattern": "^[0-9a-f]{16}$"
     },
     "description": "A job id (16 lower-case hex digits)."
    }
   ],
   "get": {
    "summary": "A job's state",
    "operationId": "getJob",
    "responses": {
     "200": {
      "description": "Its state.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Job"
        }
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NotFound"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "503": {
      "$ref": "#/components/responses/Unavailable"
     }
    }
   },
   "delete": {
    "summary": "Cancel a queued or running job; forget a finished one",
    "operationId": "deleteJob",
    "responses": {
     "200": {
      "description": "Cancelled.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Job"
        }
       }
      }
     },
     "204": {
      "description": "It had ended: its result is acknowledged and forgotten."
     },
     "404": {
      "$ref": "#/components/responses/NotFound"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "503": {
      "$ref": "#/components/responses/Unavailable"
     }
    }
   }
  },
  "/v1/jobs/{id}/result": {
   "parameters": [
    {
     "name": "id",
     "in": "path",
     "required": true,
     "schema": {
      "type": "string",
      "pattern": "^[0-9a-f]{16}$"
     },
     "description": "A job id (16 lower-case hex digits)."
    }
   ],
   "get": {
    "summary": "A finished job's result image",
    "operationId": "getResult",
    "responses": {
     "200": {
      "$ref": "#/components/responses/Image"
     },
     "409": {
      "description": "Not finished yet (`unavailable`), or cancelled.",
      "content": {
       "application/problem+json": {
        "schema": {
         "$ref": "#/components/schemas/Problem"
        }
       }
      }
     },
     "422": {
      "description": "The job failed (its code and message).",
      "content": {
       "application/problem+json": {
        "schema": {
         "$ref": "#/components/schemas/Problem"
        }
       }
      }
     },
     "404": {
      "description": "No such job, or its result was acknowledged or expired (saying when).",
      "content": {
       "application/problem+json": {
        "schema": {
         "$ref": "#/components/schemas/Problem"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "503": {
      "$ref": "#/components/responses/Unavailable"
     }
    }
   }
  },
  "/v1/jobs/{id}/events": {
   "parameters": [
    {
     "name": "id",
     "in": "path",
     "required": true,
     "schema": {
      "type": "string",
      "pattern": "^[0-9a-f]{16}$"
     },
     "description": "A job id (16 lower-case hex digits)."
    }
   ],
   "get": {
    "summary": "A job's states as Server-Sent Events, until it ends",
    "operationId": "jobEvents",
    "responses": {
     "200": {
      "description": "`event: job` with the job (as GET /v1/jobs/{id}) as data: its state now, then each change; the stream ends with the job.",
      "content": {
       "text/event-stream": {
        "schema": {
         "type": "string"
        },
        "example": "event: job\ndata: {\"id\":\"5e5510112668a183\",\"state\":\"running\",...}\n\n"
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NotFound"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "503": {
      "$ref": "#/components/responses/Unavailable"
     }
    }
   }
  },
  "/v1/events": {
   "get": {
    "summary": "Every job of this tenant submitted through a gateway, as Server-Sent Events",
    "operationId": "events",
    "responses": {
     "200": {
      "description": "`event: job` per change, until the client goes.",
      "content": {
       "text/event-stream": {
        "schema": {
         "type": "string"
        },
        "example": "event: job\ndata: {\"id\":\"5e5510112668a183\",\"state\":\"running\",...}\n\n"
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "503": {
      "$ref": "#/components/responses/Unavailable"
     }
    }
   }
  },
  "/v1/groups": {
   "get": {
    "summary": "The worker groups and the queue",
    "operationId": "groups",
    "responses": {
     "200": {
      "description": "Connected groups.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Groups"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "503": {
      "$ref": "#/components/responses/Unavailable"
     }
    }
   }
  },
  "/v1/health": {
   "get": {
    "summary": "Whether the broker answers",
    "operationId": "health",
    "security": [],
    "responses": {
     "200": {
      "description": "It does.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Health"
        }
       }
      }
     },
     "503": {
      "description": "It does not.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Health"
        }
       }
      }
     }
    }
   }
  },
  "/v1/openapi.json": {
   "get": {
    "summary": "This document",
    "operationId": "openapi",
    "security": [],
    "responses": {
     "200": {
      "description": "OpenAPI 3.",
      "content": {
       "application/json": {
        "schema": {
         "type": "object"
        }
       }
      }
     }
    }
   }
  }
 },
 "components": {
  "responses": {
   "Image": {
    "description": "The result image, with a file name in Content-Disposition.",
    "content": {
     "image/png": {
      "schema": {
       "type": "string",
       "format": "binary"
      }
     },
     "image/jpeg": {
      "schema": {
       "type": "string",
       "format": "binary"
      }
     },
     "image/tiff": {
      "schema": {
       "type": "string",
       "format": "binary"
      }
     },
     "image/bmp": {
      "schema": {
       "type": "string",
       "format": "binary"
      }
     },
     "image/webp": {
      "schema": {
       "type": "string",
       "format": "binary"
      }
     },
     "image/x-portable-anymap": {
      "schema": {
       "type": "string",
       "format": "binary"
      }
     }
    }
   },
   "BadRequest": {
    "description": "A bad op, parameter or field (`invalid_argument`).",
    "content": {
     "application/problem+json": {
      "schema": {
       "$ref": "#/components/schemas/Problem"
      }
     }
    }
   },
   "Unauthorized": {
    "description": "No token, or not one of the gateway's.",
    "content": {
     "application/problem+json": {
      "schema": {
       "$ref": "#/components/schemas/Problem"
      }
     }
    }
   },
   "TooLarge": {
    "description": "The image is larger than the gateway or the broker takes (`too_large`); refused before it is read.",
    "content": {
     "application/problem+json": {
      "schema": {
       "$ref": "#/components/schemas/Problem"
      }
     }
    }
   },
   "NotAnImage": {
    "description": "Not an image, or a truncated one (`invalid_image`).",
    "content": {
     "application/problem+json": {
      "schema": {
       "$ref": "#/components/schemas/Problem"
      }
     }
    }
   },
   "Busy": {
    "description": "The queue, or this tenant's share of it, is full (`resource_exhausted`); see Retry-After.",
    "content": {
     "application/problem+json": {
      "schema": {
       "$ref": "#/components/schemas/Problem"
      }
     }
    }
   },
   "Unavailable": {
    "description": "The broker does not answer, is stopping, or cannot store the job (`unavailable`); see Retry-After.",
    "content": {
     "application/problem+json": {
      "schema": {
       "$ref": "#/components/schemas/Problem"
      }
     }
    }
   },
   "NotFound": {
    "description": "No such job of this tenant.",
    "content": {
     "application/problem+json": {
      "schema": {
       "$ref": "#/components/schemas/Problem"
      }
     }
    }
   }
  },
  "parameters": {
   "Op": {
    "name": "op",
    "in": "query",
    "schema": {
     "type": "array",
     "items": {
      "type": "string"
     }
    },
    "style": "form",
    "explode": true,
    "description": "An op spec, `name` or `name:key=value,...` (GET /v1/ops lists them); repeat it for a pipeline, in order.",
    "example": [
     "grayscale",
     "gaussian_blur:ksize=5"
    ]
   },
   "Ops": {
    "name": "ops",
    "in": "query",
    "schema": {
     "type": "string"
    },
    "description": "The pipeline as one string, specs separated by `|` (when no `op` is given)."
   },
   "Format": {
    "name": "format",
    "in": "query",
    "schema": {
     "type": "string",
     "enum": [
      "png",
      "tif",
      "tiff",
      "jpg",
      "jpeg",
      "bmp",
      "webp",
      "ppm",
      "pgm",
      "pnm"
     ],
     "default": "png"
    },
    "description": "The result's encoding."
   },
   "Priority": {
    "name": "priority",
    "in": "query",
    "schema": {
     "type": "integer",
     "minimum": 0,
     "maximum": 9,
     "default": 4
    },
    "description": "9 runs first."
   },
   "Name": {
    "name": "name",
    "in": "query",
    "schema": {
     "type": "string"
    },
    "description": "For people: shown in states and events, and the result's file name."
   },
   "Timeout": {
    "name": "timeout",
    "in": "query",
    "schema": {
     "type": "number",
     "minimum": 0
    },
    "description": "Seconds one attempt may run (0: the broker's default)."
   },
   "IdempotencyKey": {
    "name": "Idempotency-Key",
    "in": "header",
    "schema": {
     "type": "string"
    },
    "description": "The same key and request again name the same job, never a second run."
   }
  },
  "requestBodies": {
   "Image": {
    "required": true,
    "content": {
     "image/*": {
      "schema": {
       "type": "string",
       "format": "binary"
      }
     },
     "application/octet-stream": {
      "schema": {
       "type": "string",
       "format": "binary"
      }
     },
     "multipart/form-data": {
      "schema": {
       "type": "object",
       "required": [
        "file"
       ],
       "properties": {
        "file": {
         "type": "string",
         "format": "binary",
         "description": "The image; its file name names the job."
        },
        "op": {
         "type": "array",
         "items": {
          "type": "string"
         }
        },
        "ops": {
         "type": "string"
        },
        "format": {
         "type": "string"
        },
        "priority": {
         "type": "integer"
        },
        "name": {
         "type": "string"
        },
        "timeout": {
         "type": "number"
        },
        "wait": {
         "type": "number"
        }
       }
      },
      "encoding": {
       "op": {
        "explode": true
       }
      }
     }
    }
   }
  },
  "securitySchemes": {
   "bearer": {
    "type": "http",
    "scheme": "bearer",
    "description": "A token of the gateway's --tokens file."
   }
  },
  "schemas": {
   "Job": {
    "type": "object",
    "required": [
     "id",
     "state",
     "links"
    ],
    "properties": {
     "id": {
      "type": "string"
     },
     "state": {
      "type": "string",
      "enum": [
       "queued",
       "running",
       "done",
       "failed",
       "cancelled"
      ]
     },
     "name": {
      "type": "string"
     },
     "attempts": {
      "type": "integer",
      "description": "Dispatches so far."
     },
     "position": {
      "type": "integer",
      "description": "Queued: 1 = next to run."
     },
     "group": {
      "type": "string",
      "description": "Running: the worker group."
     },
     "stages_done": {
      "type": "integer"
     },
     "stages": {
      "type": "integer",
      "description": "Running in strips: stages finished and in all."
     },
     "code": {
      "type": "integer"
     },
     "code_name": {
      "type": "string"
     },
     "message": {
      "type": "string",
      "description": "Failed or cancelled: why."
     },
     "submitted": {
      "type": "number",
      "description": "Unix seconds (in lists)."
     },
     "finished": {
      "type": "number",
      "description": "Unix seconds; 0 while unfinished (in lists)."
     },
     "kept": {
      "type": "boolean",
      "description": "Its result waits to be fetched (in lists)."
     },
     "links": {
      "type": "object",
      "properties": {
       "self": {
        "type": "string"
       },
       "result": {
        "type": "string"
       }
      }
     }
    }
   },
   "JobList": {
    "type": "object",
    "required": [
     "jobs",
     "next_cursor"
    ],
    "properties": {
     "jobs": {
      "type": "array",
      "items": {
       "$ref": "#/components/schemas/Job"
      }
     },
     "next_cursor": {
      "type": "string",
      "nullable": true
     }
    }
   },
   "Groups": {
    "type": "object",
    "properties": {
     "groups": {
      "type": "array",
      "items": {
       "type": "object",
       "properties": {
        "name": {
         "type": "string"
        },
        "ranks": {
         "type": "integer"
        },
        "slots": {
         "type": "integer"
        },
        "running": {
         "type": "integer"
        },
        "idle_seconds": {
         "type": "number"
        }
       }
      }
     },
     "queued": {
      "type": "integer"
     },
     "running": {
      "type": "integer"
     },
     "durable": {
      "type": "boolean"
     },
     "journal": {
      "type": "string"
     },
     "version": {
      "type": "string"
     }
    }
   },
   "Health": {
    "type": "object",
    "properties": {
     "status": {
      "type": "string",
      "enum": [
       "ok",
       "degraded"
      ]
     },
     "broker": {
      "type": "string",
      "enum": [
       "reachable",
       "unreachable"
      ]
     }
    }
   },
   "Problem": {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": [
     "type",
     "title",
     "status"
    ],
    "properties": {
     "type": {
      "type": "string",
      "example": "urn:imgq:problem:resource_exhausted"
     },
     "title": {
      "type": "string"
     },
     "status": {
      "type": "integer"
     },
     "detail": {
      "type": "string",
      "description": "What happened and what to do."
     },
     "code": {
      "type": "integer",
      "description": "The imgq protocol's code."
     },
     "code_name": {
      "type": "string"
     },
     "job": {
      "type": "string"
     }
    }
   }
  }
 }
}
)json";

}  // namespace imgq::gateway
